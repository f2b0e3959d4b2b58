"""Pure figure builders: plain tensors / lists in, plotly Figures out (no Streamlit)."""
