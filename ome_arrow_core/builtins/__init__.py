"""Built-in plugins: numpy ingest, Parquet reader/writer, .npy reader, CPU exporters."""
