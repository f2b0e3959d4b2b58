"""Weights in and out: our checkpoints, Hugging Face folders, the checkpoint cache, pretrained
models shipped by packages, and what a visitor may make the server read. Imports core, text."""
