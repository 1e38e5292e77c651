"""PALEO: analytical performance model of deep networks (Qi, Sparks & Talwalkar, ICLR 2017).

* ``spec``: PALEO's JSON net specs (shipped ones in conf/paleo/nets/), ``frame``: nets from
  layer frames extracted from torch modules;
* ``layers``: per-layer FLOPs and memory traffic of the forward, data-gradient and
  weight-gradient phases; ``model``: ``T = R + C + W`` per layer on a device, pass sums and
  parallel-branch bounds, the SGD update, and ``fit_ppp``;
* ``comm``: gradient all-reduce time per scheme; ``scaling``: weak and strong data-parallel
  tables; ``estimate``: all of it as one result (the ``costnet-paleo`` CLI);
* ``presets``: devices, links and cost constants of conf/paleo/*.yaml.
"""
