"""Measurements on built models: experiments, head statistics, RoPE usage, benchmarks and
their stored runs, the dashboard's plain computations (workbench). Imports every layer below."""
