from higgsbench.entry import main

main()
