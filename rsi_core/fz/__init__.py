"""Feature visualizations (FZs): transforms, objectives, the render loop, the FZ bank."""
