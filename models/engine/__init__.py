"""The Brian2 engine: device selection, networks compiled once and run many times, the kept-build
cache, spike replay from tables that ``run_args`` swaps, binned spike counters, and the chunked
presentation of many samples (in parallel processes where nothing learns)."""
