"""pixelgate's benchmarks (``python -m bench``); never part of the test suite but for one ``--quick`` smoke
test that keeps them from rotting."""
