"""Start the panininet web page (as Hugging Face Spaces run it): ``python app.py [--host H] [--port P] [--share]``.

The same as the console script ``panininet-web``; ``python app.py -h`` lists every flag.
"""
import sys

from panininet.web.server import main

if __name__ == '__main__':
    sys.exit(main())
