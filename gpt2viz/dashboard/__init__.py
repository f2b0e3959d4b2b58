"""The Streamlit dashboard: the only part of gpt2viz that imports streamlit.

routing (pages, the shared sidebar) · models (the model store) · build_table (Build & train's
rows, downloads, estimate) · prompts (the shared prompt and its forward pass) · sidebar (the
controls and the link) · training (background training as a page sees it) · corpora (the
user's own text) · serving_mode (local / shared mode) · bench_runs (Latency & memory's runs).
The library under gpt2viz/ computes; these modules only ask, show and keep.
"""
