"""gpt2viz dashboard: `streamlit run app.py`. Routes the pages; the sidebar is shared."""
import ui

ui.run_app()
