from higgsbench.cli import main

main()
