"""A stand-in for SLURM's commands on one machine, enough for submitit's SLURM executor
(and so Hydra's ``hydra/launcher=submitit_slurm``) to submit and finish a job array.

``sbatch SCRIPT`` reads the script's ``#SBATCH`` lines and runs every array task in the
background as ``bash SCRIPT`` with the variables SLURM sets (``SLURM_ARRAY_TASK_ID``,
``SLURM_CPUS_PER_TASK``, ...); ``srun`` runs its command with ``--output``/``--error``
expanded; ``sacct`` knows no job (submitit then waits for the result files); ``scancel``
does nothing. Not a scheduler: tasks run at once, resources are only passed on as variables.
"""

from __future__ import annotations

import sys
from pathlib import Path

_SBATCH = r'''
import os, re, subprocess, sys, time
script = sys.argv[-1]
flags = dict(re.findall(r"^#SBATCH --([\w-]+)(?:=(.*))?$", open(script).read(), re.M))
job = str(int(time.time() * 1000) % 10_000_000)
first, last = (flags.get("array") or "0-0").split("%")[0].split("-")
log = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "sbatch.log"), "a")
log.write(open(script).read() + "\n")
for task in range(int(first), int(last) + 1):
    env = {**os.environ, "SLURM_JOB_ID": f"{job}{task}", "SLURM_NTASKS": "1", "SLURM_JOB_NUM_NODES": "1",
           "SLURM_NODEID": "0", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_JOB_NODELIST": "localhost",
           "SLURM_JOB_NAME": flags.get("job-name", "")}
    if "array" in flags:
        env.update(SLURM_ARRAY_JOB_ID=job, SLURM_ARRAY_TASK_ID=str(task))
    if flags.get("cpus-per-task"):
        env["SLURM_CPUS_PER_TASK"] = flags["cpus-per-task"]
    subprocess.Popen(["bash", script], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)
print(f"Submitted batch job {job}")
'''

_SRUN = r'''
import os, subprocess, sys
args, files = sys.argv[1:], {}
while args and args[0].startswith("--"):
    flag = args.pop(0)
    if flag in ("--output", "--error"):
        files[flag] = args.pop(0)
def expand(path):
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    path = path.replace("%A", array or "").replace("%a", task or "").replace("%t", "0")
    return path.replace("%j", os.environ["SLURM_JOB_ID"])
out = open(expand(files["--output"]), "a") if "--output" in files else None
err = open(expand(files["--error"]), "a") if "--error" in files else None
sys.exit(subprocess.call(args, stdout=out, stderr=err))
'''

_SACCT = r'''
print("JobID|State|NodeList")
'''

_SCANCEL = r'''
'''


def install(bin_dir: Path) -> Path:
    """Write ``sbatch``, ``srun``, ``sacct`` and ``scancel`` into ``bin_dir`` (put it first on
    PATH); every submitted script is appended to ``bin_dir/sbatch.log``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, body in {"sbatch": _SBATCH, "srun": _SRUN, "sacct": _SACCT, "scancel": _SCANCEL}.items():
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n{body.lstrip()}")
        path.chmod(0o755)
    return bin_dir
