from ostiary.cli import main

raise SystemExit(main())
