from otel_launch._launcher.cli import main

main()
