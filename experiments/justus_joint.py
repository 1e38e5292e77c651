"""Justus et al. 2018, Fig. 6: one conv model for all six GPUs (batch size below 33).

Configured by conf/experiment/justus_joint.yaml; the work is costnet.reproduce.

    python experiments/justus_joint.py [--quick] [--out DIR]     # same as costnet-reproduce --only justus_joint
"""

import sys

from costnet.cli.reproduce import main

if __name__ == "__main__":
    main(["--only", "justus_joint", *sys.argv[1:]])
