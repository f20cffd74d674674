"""Built-in Parquet reader and writer (placeholder until the format lands)."""
