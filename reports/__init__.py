"""Paper-style tables, figures and the HTML report."""
