"""`python -m gpt2viz train | bench | experiment`: the analysis functions on the command line."""
