"""`python -m benchmarks.gpu_check --out DIR [--quick]`: everything a CUDA machine can verify, in one process.

No GPU path of this project runs in CI, and a GPU is lent only now and then, for minutes. This check is
the one prepared command for such a machine: environment, the paper generator's CUDA lines (precisions,
layouts, CUDA graphs, torch.compile) against the dense fp16 matmul peak measured in the same run, the
runtime's torch backend on CUDA against the CPU, AMP training and torchrun with NCCL, TensorRT where it
is installed, and the `gpu` tests. Each section runs under its own time box and is written to
DIR/<gpu-name>.json and .md as soon as it ends, so a run cut short keeps what it measured.

Modules: `cli` (arguments, the section order, exit codes), `sections` (time boxes and the partial-results
path), `report` (the JSON and Markdown files), `peak` (matmul peak and the arithmetic of rates),
`lines` (section 2), `runtime_check` (3), `training_check` (4), `system` (1, 5, 6), `nccl_worker`
(what torchrun starts).
"""
