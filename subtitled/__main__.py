from subtitled.cli import main

raise SystemExit(main())
