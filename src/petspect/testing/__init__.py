"""Tools for testing petspect and code built on it: sample inputs of every format and a reader fuzzer."""
