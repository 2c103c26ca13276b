from atls.cli import main

main()
