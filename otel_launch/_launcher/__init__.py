"""The parent process: the command line, the resolved configuration, the doctor and the exec of the
target. Never imported inside the target."""
