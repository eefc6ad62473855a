from logship.console import main

main()
