"""Regressor comparison (AI Gauge): tree, forest, boosting, 3-layer MLP, linear regression with 5-fold CV.

Configured by conf/experiment/aigauge_regressors.yaml; the work is costnet.reproduce.

    python experiments/aigauge_regressors.py [--quick] [--out DIR]     # same as costnet-reproduce --only aigauge_regressors
"""

import sys

from costnet.cli.reproduce import main

if __name__ == "__main__":
    main(["--only", "aigauge_regressors", *sys.argv[1:]])
