"""The top layer: the `dtvnet` command line (`dtvnet.cli`) and the demo (`dtvnet.demo`).

They tie the packages below together (runtime, training, export, benchmarks) and nothing imports them.
"""
