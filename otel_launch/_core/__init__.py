"""The standard-library core that the launcher and the runtime both read: the settings table and
its parsers, the masker, the instrumentor catalogue, the service-name rules. It imports no other
layer and no third-party package: the bootstrap reads it at interpreter start in every launched
process."""

# Set by the launcher when it named no process and the user named none (no OTEL_SERVICE_NAME, no
# service.name in OTEL_RESOURCE_ATTRIBUTES, no configuration file): each Python process started
# with it reads its own name from its command line (service_name.py's rules), sets
# OTEL_SERVICE_NAME and removes it, so that what it starts keeps its name, as a name the launcher
# set is kept. Here rather than in service_name.py: every launched process looks for it at start,
# and importing the rules costs ~3.6M instructions. Its values:
#   "<pid>:<path>"  the launcher's own command (process <pid>, exec'd from <path>) was read by the
#                   launcher already: nothing to read in it, nor to say (--print-config showed it),
#                   and "quiet" below it. In any other process, as "say".
#   "say"           read a name; a process that finds none says so once, and "quiet" below it.
#   "quiet"         read a name; none is no news: a process above said so, or was the launcher's own.
NAME_FROM_COMMAND = "_OTEL_LAUNCH_NAME_FROM_COMMAND"
SAY = "say"
QUIET = "quiet"
