"""Text in tokens: GPT-2's BPE offline and the corpora models train on. Imports only core."""
