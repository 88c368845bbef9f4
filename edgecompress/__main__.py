from edgecompress.cli import main

main()
