"""Text in tokens: GPT-2's BPE offline, a model's own tokenizer (Hugging Face `tokenizers`), and the
corpora models train on. Imports only core."""
