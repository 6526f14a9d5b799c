"""One job on several processes (GPUs, or CPU processes with gloo) through torch.distributed.

plan.py chooses how the ranks are used (CFG parallel, Ulysses sequence parallel, windows) and refuses
a setup that cannot work before any model loads; group.py starts the process group (torchrun's env);
cfg.py runs the two CFG passes on two ranks; sequence.py turns on diffusers' context parallelism
(Ulysses) for our transformer; windows.py deals a long video's windows of a step out (sampling.py's
window loop asks it); session.py is the leader/follower protocol of a job; workers.py
starts and ends the worker processes ComfyUI uses.
"""
