"""Demo data shipped with the package (see NOTICE.md for its source and licence)."""
