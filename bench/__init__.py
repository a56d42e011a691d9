"""imserver benchmarks: each scenario prints a table of figures."""
