"""Reproduce PALEO's AlexNet data-parallel case (Qi, Sparks & Talwalkar, ICLR 2017, Table 4).

    python experiments/paleo_scaling.py [--out DIR]     # same as costnet-reproduce --only paleo_scaling

AlexNet (one tower, Krizhevsky 2014) on 1, 2, 4 and 8 K20 GPUs, 128 images per GPU per step
(weak scaling), gradients exchanged over PCIe 2.0 at 8 GB/s x PPP_comm 0.75 = the 6 GB/s
Krizhevsky measured, PPP_comp 0.46, all as in PALEO's own script for this case
(scripts/exp_case_hybrid.sh). The setup and the published numbers are read from
conf/paleo/experiments/alexnet_k20.yaml (conf/experiment/paleo_scaling.yaml names it); the work
is costnet.reproduce.paleo. Writes <out>/paleo_scaling/table.md, table.csv, scaling.png and
provenance.json, and <out>/REPORT.md.

Where and why our numbers differ from PALEO's:

* The published numbers in the config are flagged ``verified: false`` (recalled, not read
  from the PDF in the session that wrote this); the output repeats the flag.
* Network: we ship our own one-tower AlexNet (torchvision's layout, 61.1 M parameters, conv1
  padded to 55x55, fully connected fc6), where PALEO's nets/alex_v2.json is TF-slim's
  variant (conv4 with 384 filters, fc6 as a 5x5 convolution, about 50 M parameters). Our
  compute per step is close; our gradients are about a fifth larger, so our communication is.
* Update: we scale the SGD update by PPP like every other layer; PALEO's simulation runs
  it at 100% of peak (profile_apply_updates gets default options). A few ms per step.
* Training hours: step time x 90 epochs x 1,281,167 images / global batch is our reading
  of how the table counts hours; speedups do not depend on it.
* One worker: our 89.8 h is 7% under PALEO's 96.31 h; the nets differ (above) and PALEO's
  update runs unscaled, so per step PALEO computes about 385 ms where we compute 359 ms.
* Communication: the table's data-parallel column does not name a scheme, so all four are
  shown. Tree all-reduce matches it within 2% at 2 and 4 workers (55.1 vs 55.9 h, 32.6 vs
  32.8 h) but at 8 workers PALEO's 28.65 h is 52% above our tree (18.9 h) and within 2% of
  our one-to-all (29.1 h): PALEO's 8-GPU point carries communication we do not model (8
  GPUs of that era sat behind two PCIe switches, and PALEO halves the bandwidth between
  groups of four GPUs in its model-parallel fetches), so our tree curve keeps scaling.
* The hybrid (model-parallel fully connected layers) columns are shown for reference
  only: this package models data parallelism.
"""

import sys

from costnet.cli.reproduce import main

if __name__ == "__main__":
    main(["--only", "paleo_scaling", *sys.argv[1:]])
