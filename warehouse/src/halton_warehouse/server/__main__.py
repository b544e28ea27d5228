from halton_warehouse.server.listener import main

main()
