"""The benchmarks of esb-images (bench/run): see bench/README.md."""
