from ksmtop.cli import main

raise SystemExit(main())
