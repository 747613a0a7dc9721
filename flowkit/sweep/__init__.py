"""Sweeps: a grid of firm variants x symbols x windows x seeds, each point a cell, run by a local process pool (or Ray), compared with statistics a reviewer would accept."""
