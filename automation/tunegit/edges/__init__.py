"""The I/O at the edges: workspace, verification, priors, harvest, git store and history, scaffold.
Imports plug-ins (tools/, executors/), files, render/, core/, spec/; not generators/ or loop/."""
