"""Justus et al. 2018, Sec. V: leave-one-GPU-out and few-shot adaptation to an unseen GPU.

Configured by conf/experiment/justus_lodo_fewshot.yaml; the work is costnet.reproduce.

    python experiments/justus_lodo_fewshot.py [--quick] [--out DIR]     # same as costnet-reproduce --only justus_lodo_fewshot
"""

import sys

from costnet.cli.reproduce import main

if __name__ == "__main__":
    main(["--only", "justus_lodo_fewshot", *sys.argv[1:]])
