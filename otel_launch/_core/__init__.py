"""The standard-library core that the launcher and the runtime both read: the settings table and
its parsers, the masker, the instrumentor catalogue, the service-name rules. It imports no other
layer and no third-party package: the bootstrap reads it at interpreter start in every launched
process."""
