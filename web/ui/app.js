document.getElementById("main").textContent = "loading";
