"""The classic per-image optimizer (Gatys et al.): its options and the optimisation loop."""
