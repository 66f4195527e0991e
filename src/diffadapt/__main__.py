from diffadapt.cli import main

raise SystemExit(main())
