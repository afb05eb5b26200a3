"""Datasets: Fashion-MNIST (IDX files) and image folders, both read as streams of batches."""
