"""The run layer, the only package that knows Hydra: the commands (cli), train, evaluate, the
schemas and validation of configs, building the Trainer, run directories, resume, console, trackers."""
