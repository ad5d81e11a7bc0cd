from otel_launch._cli import main

main()
