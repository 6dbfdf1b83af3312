from edge_monitor.main import main

main()
