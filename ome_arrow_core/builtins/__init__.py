"""Built-in plugins: numpy ingest, Parquet reader/writer, CPU exporters."""
