"""Justus et al. 2018, Fig. 3: per-GPU conv and dense models on the six GPUs.

Configured by conf/experiment/justus_per_device.yaml; the work is costnet.reproduce.

    python experiments/justus_per_device.py [--quick] [--out DIR]     # same as costnet-reproduce --only justus_per_device
"""

import sys

from costnet.cli.reproduce import main

if __name__ == "__main__":
    main(["--only", "justus_per_device", *sys.argv[1:]])
