"""Build and measure the toy world (training, ground truth, figures); nothing here is needed at run time."""
