// Entry point of the browser client: starts the app once the page is parsed.
import "./style.css";
import { App } from "./app";

new App().start();
