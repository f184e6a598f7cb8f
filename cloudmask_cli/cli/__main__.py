from cloudmask_cli.cli import main

main()
