from distillery_client.cli import main

raise SystemExit(main())
