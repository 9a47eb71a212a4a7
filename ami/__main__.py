from ami.cli import main

raise SystemExit(main())
