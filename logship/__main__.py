from logship.cli import main

main()
